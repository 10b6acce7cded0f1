"""Reference distributions stored with each model version and the drift statistics computed against them."""
