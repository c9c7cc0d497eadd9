CREATE TABLE a (x int);
INSERT INTO a VALUES ('it''s; ok');
SELECT "a;""b" FROM a
