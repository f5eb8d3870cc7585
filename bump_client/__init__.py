"""The bump backend's HTTP client, on the side that uses it: stdlib + requests + the contracts."""
