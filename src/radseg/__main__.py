from radseg.cli import main

main()
