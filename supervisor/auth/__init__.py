"""The auth wall: a password login, a signed cookie, and the check Caddy's forward_auth asks.

keys       AUTH_PASSWORD / AUTH_SECRET / AUTH_SECRET_PREVIOUS from the environment
cookie     the signed, dated cookie value (itsdangerous) naming a session, verified against both keys
sessions   the server-side sessions a cookie names, so that logging out ends one
rotation   when a key rotation started, remembered in the data dir
throttle   per-client lockouts after wrong passwords
origin     the site's origin, the CSRF check, browser navigation or API call
nextpath   `next=` reduced to a local path
wall       AuthWall: all of the above, the proxy secret, and the forward_auth decision as data
page       the login page
views      the /auth blueprint and `require_auth` for the admin routes
forward    the fast forward_auth responder on a unix socket
"""

from .forward import FORWARD_AUTH_SOCKET, serve_forward_auth
from .keys import AuthSecrets
from .views import CONFIG_KEY, auth, require_auth
from .wall import AuthWall

__all__ = [
    "CONFIG_KEY",
    "FORWARD_AUTH_SOCKET",
    "AuthSecrets",
    "AuthWall",
    "auth",
    "require_auth",
    "serve_forward_auth",
]
