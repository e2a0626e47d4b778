"""Web push: the phone is told when a chat finishes a turn, fails, or waits on the user.

    checks         is it a browser's push subscription: an https endpoint (http on loopback), P-256 keys
    device         a readable device name from a User-Agent
    subscriptions  the subscriptions, kept in <data_dir>/push (0700), written whole or not at all
    presence       which apps are visible now: while one is, nothing is pushed (decided here, never in
                   the service worker: iOS revokes subscriptions that get silent pushes)
    notices        what a chat's status change says: title, body, tag, url
    seal           the crypto, in a short-lived child process: VAPID keys (RFC 8292) and aes128gcm
                   payloads (RFC 8291), so the daemon itself never loads it and never holds the key
    sender         runs `seal`, posts to the push services, reads what they answer
    notifier       the daemon's side: keys at start, chat status changes in, pushes out

Nothing here imports a crypto library: the daemon stays small (README, "Web push").
"""
