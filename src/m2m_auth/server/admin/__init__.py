"""Client registration and server administration (RFC 7591 field names)."""
