"""The local web viewer of recorded runs: `fslm ui`, or `serving(make_server(open_store(path)))` from
Python."""

from fslm.ui.server import ViewerServer, make_server, serving

__all__ = ["ViewerServer", "make_server", "serving"]
