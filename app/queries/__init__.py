"""SQL lives here. Functions take a Session and return rows; they know nothing of HTTP."""
