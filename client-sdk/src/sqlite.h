/* sqlite.h - include SQLite with the session extension declared.
 * The session API is only declared when these are defined first. */
#ifndef ES_SQLITE_H
#define ES_SQLITE_H
#ifndef SQLITE_ENABLE_SESSION
#define SQLITE_ENABLE_SESSION 1
#endif
#ifndef SQLITE_ENABLE_PREUPDATE_HOOK
#define SQLITE_ENABLE_PREUPDATE_HOOK 1
#endif
#include <sqlite3.h>
#endif
