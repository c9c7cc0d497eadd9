INSERT INTO t VALUES (E'it\'s; a \\', 'a\');
SELECT e'\';';
