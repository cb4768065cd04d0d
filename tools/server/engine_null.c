/* engine_null: the recognition-free engine that names exact audio spans. */
#include "engine.h"
