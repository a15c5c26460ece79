// meshctl library.
