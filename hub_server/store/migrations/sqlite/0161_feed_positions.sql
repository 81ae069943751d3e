-- PostgreSQL's 0161 gives event rows the id of the transaction that stored them, for several instances. SQLite
-- keeps one instance with one writer, whose receive times order its commits (store/feed.py): nothing to add.
SELECT 1;
