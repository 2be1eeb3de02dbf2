// The `kto` program: dispatches to one verb per file under cli/ and turns kto::Error into one
// "kto: …" line and a category exit code.
#include "cli/app.h"

int main(int argc, char** argv) { return kto::cli::run(argc, argv); }
