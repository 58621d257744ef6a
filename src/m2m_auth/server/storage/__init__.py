"""Storage behind narrow, protocol-shaped interfaces; nothing outside this package talks SQL."""
