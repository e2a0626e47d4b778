import { describe, expect, it } from "vitest";
import { isIOS, keyBytes, pushSupport, subscriptionId, type Environment } from "./push";

const IPHONE =
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";
const PIXEL = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/124.0 Mobile Safari/537.36";
const MAC = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 Version/17.4 Safari/605.1.15";

function env(over: Partial<Environment>): Environment {
  return {
    userAgent: PIXEL,
    platform: "Linux armv8l",
    maxTouchPoints: 5,
    standalone: false,
    serviceWorker: true,
    pushManager: true,
    notification: true,
    ...over,
  };
}

describe("push support", () => {
  it("asks iOS outside the Home Screen app to add it there", () => {
    // Safari in a tab has no PushManager at all: the explanation, not "unsupported"
    expect(pushSupport(env({ userAgent: IPHONE, platform: "iPhone", pushManager: false, notification: false }))).toBe(
      "ios-home-screen",
    );
    expect(pushSupport(env({ userAgent: IPHONE, platform: "iPhone", standalone: true }))).toBe("ok");
    // iOS before 16.4, from the Home Screen: no push at all
    expect(pushSupport(env({ userAgent: IPHONE, standalone: true, pushManager: false }))).toBe("unsupported");
  });

  it("knows an iPad that says it is a Mac by its touch points", () => {
    expect(isIOS({ userAgent: MAC, platform: "MacIntel", maxTouchPoints: 5 })).toBe(true);
    expect(isIOS({ userAgent: MAC, platform: "MacIntel", maxTouchPoints: 0 })).toBe(false);
    expect(pushSupport(env({ userAgent: MAC, platform: "MacIntel", maxTouchPoints: 0 }))).toBe("ok");
  });

  it("needs a service worker, the push manager and notifications elsewhere", () => {
    expect(pushSupport(env({}))).toBe("ok");
    expect(pushSupport(env({ serviceWorker: false }))).toBe("unsupported");
    expect(pushSupport(env({ pushManager: false }))).toBe("unsupported");
    expect(pushSupport(env({ notification: false }))).toBe("unsupported");
  });
});

describe("keys and ids", () => {
  it("decodes the VAPID public key as base64url, padded or not", () => {
    const bytes = keyBytes("BP_-AQ");
    expect(Array.from(bytes)).toEqual([0x04, 0xff, 0xfe, 0x01]);
    expect(Array.from(keyBytes("BP_-AQ=="))).toEqual([0x04, 0xff, 0xfe, 0x01]);
  });

  it("names a subscription as the daemon does: sha256 of the endpoint, 16 hex", async () => {
    // python3 -c 'import hashlib; print(hashlib.sha256(b"https://push.example/x").hexdigest()[:16])'
    expect(await subscriptionId("https://push.example/x")).toBe("6f531242b783a6b7");
  });
});
