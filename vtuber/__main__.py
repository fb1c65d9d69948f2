from vtuber.cli import main

raise SystemExit(main())
