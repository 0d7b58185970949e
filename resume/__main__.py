from resume._cli import main; raise SystemExit(main())
