"""The disclosure workflow: end-to-end sealed answers between the holder of a record and the
organisation that matched it, deadlines, hiring outcomes, and the applicant's consent lookup."""
