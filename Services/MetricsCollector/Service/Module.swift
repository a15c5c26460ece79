// Service library.
