"""Pipeline stages: each reads what the previous stage stored, calls the plain-array rooms
(``inference``, ``solvers``) and stores its result through ``trackdb.store`` as a recorded run."""
