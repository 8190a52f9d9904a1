from hub.runtime.cli import main

main()
