"""Running a course: the instructor's workflow and the student's, behind ``dgm-course``.

The command line (:mod:`dgm_lab.cli`) is a thin layer over these modules:

- :mod:`.layout`: the course root (the folder holding ``nbgrader_config.py``), its labs and
  grading folders, nbgrader's configuration; :class:`CourseError` for every problem a user
  can fix;
- :mod:`.collect`: submissions from folders, zips and LMS exports into ``submitted/``;
- :mod:`.batch`: a class graded with parallel workers, recorded in nbgrader's gradebook;
- :mod:`.grades`: the wide grade table and the report of edited or deleted locked cells;
- :mod:`.validate`: a notebook checked as a student runs it and as the grader reads it;
- :mod:`.student`: a lab copied into the student's own work folder.
"""

from dgm_lab.course.layout import Course, CourseError

__all__ = ["Course", "CourseError"]
