import PlugvisorWorker

PlugvisorWorker.main()
