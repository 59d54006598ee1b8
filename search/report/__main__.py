"""`python -m search.report <report folder>` (search.report.rebuild)."""

from search.report.rebuild import main

if __name__ == "__main__":
    raise SystemExit(main())
