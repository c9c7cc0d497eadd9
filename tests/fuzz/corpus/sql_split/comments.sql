-- note; it's
/* outer /* inner; */ still */ SELECT 1; /* x */ ;;
