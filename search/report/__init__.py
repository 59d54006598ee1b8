"""The report folder and the terminal, the only writers of what a sweep shows: every file name and the one
whole-file write (`files`), the matplotlib backend (`figures`), the result files and plots, report.html (`page`,
`sections`), the terminal's tables, the copy to object storage and the W&B runs; `python -m search.report` rebuilds
a finished sweep's report (`rebuild`)."""
