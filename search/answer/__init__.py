"""The answer to the user's question, as pure functions (results in, tables out, no files written): trial
histories, real-only twins, the leaderboard, the paired synthetic effect, the value-of-synthetic-data curve, the
Pareto front, the finalists' choice and test tables, and their one `statistics` module."""
