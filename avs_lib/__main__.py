from avs_lib.cli import main

raise SystemExit(main())
