"""The gleaner command line (wsk habits: ~/.wskprops, -b, -r, -p k v)."""
