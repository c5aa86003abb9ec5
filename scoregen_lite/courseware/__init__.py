"""Teacher and website tools; students never need to import them.

``site`` (the course website), ``results`` (tables rendered from committed benchmark and checkpoint files),
``grading`` (nbgrader), ``copies`` (student copies of the notebooks), ``nbclean`` (clean committed notebooks),
``notation`` (the notation sheet), ``course`` (execute every notebook; timings).
"""
