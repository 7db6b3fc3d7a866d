package dev.conceptor.keycloak;

import jakarta.ws.rs.Consumes;
import jakarta.ws.rs.ForbiddenException;
import jakarta.ws.rs.GET;
import jakarta.ws.rs.NotAuthorizedException;
import jakarta.ws.rs.NotFoundException;
import jakarta.ws.rs.PUT;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.PathParam;
import jakarta.ws.rs.Produces;
import jakarta.ws.rs.QueryParam;
import jakarta.ws.rs.ClientErrorException;
import jakarta.ws.rs.DefaultValue;
import jakarta.ws.rs.core.Response;
import jakarta.ws.rs.BadRequestException;
import jakarta.ws.rs.core.MediaType;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.keycloak.exportimport.ExportOptions;
import org.keycloak.exportimport.Strategy;
import org.keycloak.exportimport.util.ExportUtils;
import org.keycloak.exportimport.util.ImportUtils;
import org.keycloak.models.KeycloakSession;
import org.keycloak.models.RealmModel;
import org.keycloak.models.RoleModel;
import org.keycloak.representations.idm.RealmRepresentation;
import org.keycloak.services.managers.AppAuthManager;
import org.keycloak.services.managers.AuthenticationManager;

/**
 * Whole-realm snapshots for Conceptor: what the admin REST API cannot give.
 *
 * <p>The admin API never returns stored credentials, so a realm saved through it would lose every
 * password. Here the realm is exported the way `kc.sh export` writes it (users with their hashed
 * credentials), and restored by Keycloak's own import, replacing the realm inside this request's
 * single transaction: a restore that fails leaves the realm exactly as it was.
 *
 * <p>The realm import reads a realm's users with their grants and groups a page per call
 * (users-bulk), where the admin API needs the members of every role and group.
 */
@Produces(MediaType.APPLICATION_JSON)
public final class ConceptorResource {
    /** Tells the platform which endpoints this build of the extension serves. */
    public static final int API_VERSION = 1;

    private final KeycloakSession session;

    ConceptorResource(KeycloakSession session) {
        this.session = session;
    }

    @GET
    @Path("info")
    public Map<String, Object> info() {
        requireAdmin();
        Map<String, Object> info = new LinkedHashMap<>();
        info.put("extension", "conceptor");
        info.put("apiVersion", API_VERSION);
        info.put("usersBulk", UsersBulk.VERSION);
        return info;
    }

    @GET
    @Path("realms/{realm}/snapshot")
    public RealmRepresentation exportRealm(@PathParam("realm") String name) {
        requireAdmin();
        RealmModel realm = realm(name);
        ExportOptions options = new ExportOptions();
        options.setUsersIncluded(true);
        options.setClientsIncluded(true);
        options.setGroupsAndRolesIncluded(true);
        options.setOnlyServiceAccountsIncluded(false);
        return ExportUtils.exportRealm(session, realm, options, true);
    }

    /** A page of users with their direct grants and groups (see UsersBulk): one call, not one per role and group. */
    @GET
    @Path("realms/{realm}/users-bulk")
    public List<Map<String, Object>> usersBulk(
            @PathParam("realm") String name,
            @QueryParam("first") @DefaultValue("0") int first,
            @QueryParam("max") @DefaultValue("1000") int max,
            @QueryParam("full") @DefaultValue("false") boolean full) {
        requireAdmin();
        if (first < 0 || max < 1 || max > 10000) {
            throw new BadRequestException("first >= 0 and 1 <= max <= 10000");
        }
        UsersBulk bulk = new UsersBulk(session, realm(name));
        if (bulk.federated()) {
            // Federated users are not all in the database: the admin API's listing asks their store.
            throw new ClientErrorException("the realm federates users: read them through the admin API", Response.Status.CONFLICT);
        }
        return bulk.page(first, max, full);
    }

    @PUT
    @Path("realms/{realm}/snapshot")
    @SuppressWarnings("deprecation") // the supported overload; its successor takes a callback we do not need
    @Consumes(MediaType.APPLICATION_JSON)
    public Map<String, Object> restoreRealm(@PathParam("realm") String name, RealmRepresentation rep) {
        requireAdmin();
        if (rep == null || !name.equals(rep.getRealm())) {
            throw new BadRequestException("the body's realm is not " + name);
        }
        if ("master".equals(name)) {
            throw new BadRequestException("the master realm holds the admin who restores: it is never replaced");
        }
        // One transaction: the request's. Removing and importing happen together or not at all.
        ImportUtils.importRealm(session, rep, Strategy.OVERWRITE_EXISTING, false);
        RealmModel restored = realm(name);
        Map<String, Object> result = new LinkedHashMap<>();
        result.put("realm", name);
        result.put("users", session.users().getUsersCount(restored, true));
        return result;
    }

    private RealmModel realm(String name) {
        RealmModel realm = session.realms().getRealmByName(name);
        if (realm == null) {
            throw new NotFoundException("realm " + name + " does not exist");
        }
        return realm;
    }

    private void requireAdmin() {
        RealmModel master = session.getContext().getRealm();
        if (!"master".equals(master.getName())) {
            throw new NotFoundException("served under /realms/master/conceptor only");
        }
        AuthenticationManager.AuthResult auth =
                new AppAuthManager.BearerTokenAuthenticator(session).authenticate();
        if (auth == null) {
            throw new NotAuthorizedException("Bearer");
        }
        RoleModel admin = master.getRole("admin");
        if (admin == null || !auth.user().hasRole(admin)) {
            throw new ForbiddenException("needs the master realm's admin role");
        }
    }
}
