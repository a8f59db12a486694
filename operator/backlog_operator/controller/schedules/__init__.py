"""The GoalSchedule controller: Goals stamped on a cron, as CronJob stamps Jobs."""
