"""A readable name for the device a push subscription belongs to, from its User-Agent.

The app may send its own label; without one, "iPhone · Safari" or "Pixel 8 · Chrome" is enough to tell
a listing's entries apart, and to know which one to delete. The User-Agent is the browser's say-so, used
for nothing but this name.
"""

from __future__ import annotations

import re

MAX_LABEL = 60

# the first that matches names the browser: Edge, Opera and Samsung's say "Chrome" too, Chrome "Safari"
_BROWSERS = [
    (re.compile(r"\bEdg(?:e|A|iOS)?/"), "Edge"),
    (re.compile(r"\b(?:OPR|Opera)/"), "Opera"),
    (re.compile(r"\bSamsungBrowser/"), "Samsung Internet"),
    (re.compile(r"\bFirefox/|\bFxiOS/"), "Firefox"),
    (re.compile(r"\b(?:Headless)?Chrom(?:e|ium)/|\bCriOS/"), "Chrome"),
    (re.compile(r"\bVersion/[\d.]+.*\bSafari/|\bMobile/\w+\s*$"), "Safari"),
]
_PLATFORMS = [
    (re.compile(r"\biPhone\b"), "iPhone"),
    (re.compile(r"\biPad\b"), "iPad"),
    (re.compile(r"\bAndroid\b"), "Android"),
    (re.compile(r"\bCrOS\b"), "ChromeOS"),
    (re.compile(r"\bWindows\b"), "Windows"),
    (re.compile(r"\bMacintosh\b|\bMac OS X\b"), "Mac"),
    (re.compile(r"\bLinux\b"), "Linux"),
]
#: "(Linux; Android 14; Pixel 8)": the model, when the browser still tells it (Chrome's reduced UA says "K")
_ANDROID_MODEL = re.compile(r"Android [\d.]+; ([^;)]+?)(?: Build/[^;)]*)?\)")
_UNSAFE = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")


def clean_label(label: str) -> str:
    """A label as it may be listed: one line, no control characters, at most MAX_LABEL characters."""
    text = " ".join(_UNSAFE.sub(" ", label).split())
    return text[:MAX_LABEL]


def device_name(user_agent: str) -> str:
    """A name like "iPhone · Safari", "Pixel 8 · Chrome" or "Mac · Firefox"; else "unknown device"."""
    browser = next((name for pattern, name in _BROWSERS if pattern.search(user_agent)), None)
    platform = next((name for pattern, name in _PLATFORMS if pattern.search(user_agent)), None)
    if platform == "Android":
        model = _ANDROID_MODEL.search(user_agent)
        if model and model.group(1).strip() not in ("K", "Mobile", "Tablet"):
            platform = clean_label(model.group(1))
    parts = [p for p in (platform, browser) if p]
    return clean_label(" · ".join(parts)) if parts else "unknown device"
