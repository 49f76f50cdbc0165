"""`patchprop local`: the whole system on one machine, on 127.0.0.1 only (see lifecycle.py)."""
