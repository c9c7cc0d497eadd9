SELECT 'open;
