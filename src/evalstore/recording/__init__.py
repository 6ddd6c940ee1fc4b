"""How results get to the store: the evaluation run, the write-behind writer, the
journal (spool), replay, the reaper of stale runs, shutdown, scoring and provenance.
"""
