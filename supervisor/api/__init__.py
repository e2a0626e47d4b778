"""The daemon's HTTP face: a Quart app served by hypercorn on loopback TCP and the control socket.

`app` builds the application, `admin` holds the /admin routes, `server` binds and serves it.
"""
