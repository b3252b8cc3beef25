"""Network blocks shared by the algorithms."""
