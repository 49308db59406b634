from gleaner.cli.main import main

raise SystemExit(main())
