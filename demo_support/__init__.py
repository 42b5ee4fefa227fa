"""What the demo's scripts and the tests share: the demo's processes, its set-up and its firmware pushes.

`scripts/develop` and `scripts/demo-push` (`python -m scripts.py.demo`) drive these modules; the browser tests
run the same demo through them, so what a person sees in the demo is what the tests check.
"""
