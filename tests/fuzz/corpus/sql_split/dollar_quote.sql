CREATE FUNCTION f(int) RETURNS int AS $body$
BEGIN
  RETURN $1 + (SELECT $$;$$::int);
END;
$body$ LANGUAGE plpgsql;
SELECT f(1);
