"""Running studies: cells and their ids, teachers, students, the teacher replay, the run plan,
executors (local processes, Ray) and the runner that ties them together."""
