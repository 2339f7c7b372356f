"""`make bench`: speed figures of the hot paths and of the whole worker (see __main__)."""
