"""The login page: one password field on a phone screen, no framework, no external assets.

Inputs are 16px so iOS Safari does not zoom in on focus, and the viewport forbids zooming as well.
"""

from __future__ import annotations

from html import escape

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1, maximum-scale=1">
<meta name="referrer" content="no-referrer">
<meta name="color-scheme" content="dark">
<title>dancodes: log in</title>
<style>
html, body {{ margin: 0; background: #000; color: #aaa; }}
body {{ font: 16px/1.5 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }}
main {{ max-width: 22rem; margin: 0 auto; padding: 18vh 1.25rem 2rem; }}
h1 {{ font-size: 1.1rem; font-weight: normal; color: #ccc; margin: 0 0 1.5rem; }}
label {{ display: block; margin-bottom: .5rem; color: #888; }}
input, button {{ box-sizing: border-box; width: 100%; padding: .75rem; border-radius: 6px; }}
input, button {{ font: inherit; font-size: 16px; }}
input {{ background: #111; color: #ddd; border: 1px solid #333; }}
input:focus {{ outline: none; border-color: #777; }}
button {{ margin-top: 1rem; background: #222; color: #ddd; border: 1px solid #444; }}
button:active {{ background: #333; }}
p.error {{ color: #ddd; margin: 1rem 0 0; }}
</style>
</head>
<body>
<main>
<h1>dancodes</h1>
<form method="post" action="/auth/login">
<input type="hidden" name="next" value="{next}">
<label for="password">password</label>
<input id="password" name="password" type="password" autocomplete="current-password"
 autocapitalize="none" spellcheck="false" required autofocus>
<button type="submit">log in</button>
</form>{error}
</main>
</body>
</html>
"""

#: The page may load nothing, be framed by nobody, and post only to this site.
HEADERS = (
    (
        "content-security-policy",
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
    ),
    ("x-frame-options", "DENY"),
    ("cache-control", "no-store"),
    ("referrer-policy", "no-referrer"),
)


def login_page(next_path: str, error: str | None = None) -> str:
    """The page, with `next_path` (already made safe) kept in the form and an optional one-line error."""
    line = f'\n<p class="error" role="alert">{escape(error)}</p>' if error else ""
    return _PAGE.format(next=escape(next_path, quote=True), error=line)
