"""Static assets of the query API (a package so that the wheel ships them)."""
