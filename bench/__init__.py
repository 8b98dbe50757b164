"""`make bench`: the speed of the service, measured and stated with its method (see __main__)."""
