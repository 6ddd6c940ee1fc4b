"""Monitors: rules on recorded results, the alerts they raise, and where alerts go."""
