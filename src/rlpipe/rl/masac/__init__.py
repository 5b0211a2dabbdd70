"""Multi-agent SAC: a shared actor and attention critics (MAAC-style) on JaxMARL environments."""
