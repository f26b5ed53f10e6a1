"""Solutions to the labs' exercises, kept out of the students' notebooks.

``labs/solutions/<lab>.py`` holds ``SOLUTIONS``: exercise name -> the source of
a solution cell.  A notebook marks an exercise cell with the metadata
``{"tags": ["exercise"], "exercise": NAME}``; the lab tests put the solution
in place of the student's cell before running the notebook, so Run All in a
student's notebook never overwrites the student's own work, and the test
proves that every exercise can be solved (every check under it shows ✓).
"""
