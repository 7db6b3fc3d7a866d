<?php
// Adminer on the application database, with no login form: the connection comes from the
// environment (DB_TOOLS_SERVER host:port, DB_TOOLS_USER, DB_TOOLS_PASSWORD, DB_TOOLS_DB) and
// the Adminer it wraps from ADMINER_PHP. DB_TOOLS_DATABASES (comma-separated, optional) lists
// every database the environment file declares, DB_TOOLS_DB first: those are browsable. Served by `conceptor dev serve db-tools` in local
// mode and by the localdev-db-tools pod (this very file, as a ConfigMap) in the cluster.

function conceptor_db(string $name): string
{
    $value = getenv('DB_TOOLS_' . $name);
    if ($value === false || $value === '') {
        http_response_code(500);
        exit("db-tools: DB_TOOLS_$name is not set\n");
    }
    return $value;
}

$conceptorServer = conceptor_db('SERVER');
$conceptorUser = conceptor_db('USER');
$conceptorDb = conceptor_db('DB');

// The declared databases, the application's first; without the list, only that one.
function conceptor_databases(): array
{
    $listed = array_filter(explode(',', getenv('DB_TOOLS_DATABASES') ?: ''), 'strlen');
    return array_values(array_unique(array_merge([conceptor_db('DB')], $listed)));
}

// Anything but a page of a declared database (or Adminer's own scripts and styles, `?file=`)
// goes to the application database's schema `public`.
$conceptorOurs = ($_GET['pgsql'] ?? null) === $conceptorServer
    && ($_GET['username'] ?? null) === $conceptorUser
    && in_array($_GET['db'] ?? $conceptorDb, conceptor_databases(), true);
if (!$conceptorOurs && !isset($_GET['file'])) {
    $query = http_build_query([
        'pgsql' => $conceptorServer,
        'username' => $conceptorUser,
        'db' => $conceptorDb,
        'ns' => 'public',
    ]);
    header('Location: /?' . $query, true, 302);
    exit;
}

// Adminer connects only once the session "holds a password"; the real one never goes there:
// credentials() below hands it to the driver from the environment.
session_cache_limiter('');
session_name('adminer_sid');
session_start();
$_SESSION['pwds']['pgsql'][$conceptorServer][$conceptorUser] = '';
foreach (conceptor_databases() as $conceptorName) {
    $_SESSION['db']['pgsql'][$conceptorServer][$conceptorUser][$conceptorName] = true;
}

function adminer_object()
{
    class ConceptorAdminer extends Adminer
    {
        public function name()
        {
            return 'Conceptor database';
        }

        public function credentials()
        {
            return [conceptor_db('SERVER'), conceptor_db('USER'), conceptor_db('PASSWORD')];
        }

        public function login($login, $password)
        {
            return true;
        }

        public function bruteForceKey()
        {
            // Nobody types a password here, so there is nothing to guess: without this, the
            // failed connections of a start-up (PostgreSQL not up yet) lock everyone out for
            // 30 minutes after 30 of them.
            return bin2hex(random_bytes(8));
        }

        public function databases($flush = true)
        {
            return conceptor_databases();
        }

        public function head()
        {
            // No version check against the Adminer website: this runs offline.
            echo script('verifyVersion = function () {};');
            return true;
        }
    }

    return new ConceptorAdminer();
}

require getenv('ADMINER_PHP') ?: '/usr/share/adminer/adminer.php';
