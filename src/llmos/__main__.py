from llmos.cli.app import main

main()
