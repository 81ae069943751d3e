"""Server-rendered web pages of the hub: operator dashboard, resident parcel page, public sensor register.

``setup_web(app)`` adds every page route, the static files and the live event stream to the hub's app.
"""

from hub_server.web.site import setup_web

__all__ = ["setup_web"]
