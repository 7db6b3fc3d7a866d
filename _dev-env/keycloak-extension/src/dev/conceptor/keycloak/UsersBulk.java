package dev.conceptor.keycloak;

import jakarta.persistence.EntityManager;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.keycloak.connections.jpa.JpaConnectionProvider;
import org.keycloak.models.ClientModel;
import org.keycloak.models.GroupModel;
import org.keycloak.models.KeycloakSession;
import org.keycloak.models.RealmModel;
import org.keycloak.models.RoleModel;
import org.keycloak.models.UserModel;
import org.keycloak.models.jpa.UserAdapter;
import org.keycloak.models.jpa.entities.UserEntity;
import org.keycloak.models.utils.ModelToRepresentation;
import org.keycloak.representations.idm.UserRepresentation;
import org.keycloak.userprofile.UserProfile;
import org.keycloak.userprofile.UserProfileContext;
import org.keycloak.userprofile.UserProfileProvider;

/**
 * A realm's users a page at a time, each with its direct realm roles, client roles (by clientId)
 * and groups (by path), as a realm export holds them.
 *
 * <p>The admin REST API gives the same only as one listing of users plus the members of every
 * role and group, which costs Keycloak about as much as importing the realm. Here a page is
 * three queries: the users, their role mappings and their group memberships.
 */
final class UsersBulk {
    /** Tells the platform which shape this build answers with. */
    static final int VERSION = 1;

    private static final String USER_STORAGE = "org.keycloak.storage.UserStorageProvider";

    private final KeycloakSession session;
    private final RealmModel realm;
    private final EntityManager em;
    private final UserProfileProvider profiles;
    private final Map<String, Optional<RoleModel>> roles = new HashMap<>();
    private final Map<String, Optional<String>> groupPaths = new HashMap<>();

    UsersBulk(KeycloakSession session, RealmModel realm) {
        this.session = session;
        this.realm = realm;
        this.em = session.getProvider(JpaConnectionProvider.class).getEntityManager();
        this.profiles = session.getProvider(UserProfileProvider.class);
    }

    /** Users stored elsewhere (LDAP, Kerberos, a custom store) are not all in the database. */
    boolean federated() {
        return realm.getComponentsStream(realm.getId(), USER_STORAGE).findAny().isPresent();
    }

    /**
     * Users ordered by username, service accounts left out (the partial export holds those).
     * Full: the admin API's full representation. Brief: its brief one without attributes (the
     * admin API computes each user's profile for those, which is what makes its listing as
     * costly as an import; the platform reads attributes only of users its file gives some).
     */
    List<Map<String, Object>> page(int first, int max, boolean full) {
        List<UserEntity> users = em.createQuery(
                        "select u from UserEntity u where u.realmId = :realm"
                                + " and u.serviceAccountClientLink is null order by u.username",
                        UserEntity.class)
                .setParameter("realm", realm.getId())
                .setFirstResult(first)
                .setMaxResults(max)
                .getResultList();
        List<Map<String, Object>> out = new ArrayList<>(users.size());
        if (users.isEmpty()) {
            return out;
        }
        List<String> ids = new ArrayList<>(users.size());
        for (UserEntity user : users) {
            ids.add(user.getId());
        }
        Map<String, List<String>> realmRoles = new HashMap<>();
        Map<String, Map<String, List<String>>> clientRoles = new HashMap<>();
        for (Object[] row : em.createQuery(
                        "select m.user.id, m.roleId from UserRoleMappingEntity m where m.user.id in :ids",
                        Object[].class)
                .setParameter("ids", ids)
                .getResultList()) {
            RoleModel role = role((String) row[1]);
            if (role == null) {
                continue;
            }
            String user = (String) row[0];
            if (role.getContainer() instanceof ClientModel client) {
                clientRoles.computeIfAbsent(user, k -> new LinkedHashMap<>())
                        .computeIfAbsent(client.getClientId(), k -> new ArrayList<>())
                        .add(role.getName());
            } else {
                realmRoles.computeIfAbsent(user, k -> new ArrayList<>()).add(role.getName());
            }
        }
        Map<String, List<String>> groups = new HashMap<>();
        for (Object[] row : em.createQuery(
                        "select m.user.id, m.groupId from UserGroupMembershipEntity m where m.user.id in :ids",
                        Object[].class)
                .setParameter("ids", ids)
                .getResultList()) {
            String path = groupPath((String) row[1]);
            if (path != null) {
                groups.computeIfAbsent((String) row[0], k -> new ArrayList<>()).add(path);
            }
        }
        for (UserEntity entity : users) {
            UserRepresentation rep = full ? fullRep(entity) : briefRep(entity);
            if (rep == null) {
                continue;
            }
            Map<String, Object> user = new LinkedHashMap<>();
            put(user, "id", rep.getId());
            put(user, "username", rep.getUsername());
            put(user, "createdTimestamp", rep.getCreatedTimestamp());
            put(user, "firstName", rep.getFirstName());
            put(user, "lastName", rep.getLastName());
            put(user, "email", rep.getEmail());
            put(user, "enabled", rep.isEnabled());
            put(user, "emailVerified", rep.isEmailVerified());
            put(user, "federationLink", rep.getFederationLink());
            if (full) {
                put(user, "attributes", rep.getAttributes());
                put(user, "requiredActions", rep.getRequiredActions());
                put(user, "disableableCredentialTypes", rep.getDisableableCredentialTypes());
                put(user, "notBefore", rep.getNotBefore());
            }
            user.put("realmRoles", realmRoles.getOrDefault(entity.getId(), List.of()));
            user.put("clientRoles", clientRoles.getOrDefault(entity.getId(), Map.of()));
            user.put("groups", groups.getOrDefault(entity.getId(), List.of()));
            out.add(user);
        }
        return out;
    }

    private UserRepresentation briefRep(UserEntity entity) {
        return ModelToRepresentation.toBriefRepresentation(new UserAdapter(session, realm, em, entity));
    }

    private UserRepresentation fullRep(UserEntity entity) {
        // As the admin API's full listing: through the user provider (its caches, its
        // decorations), attributes as the user profile shows them to an admin.
        UserModel user = session.users().getUserById(realm, entity.getId());
        if (user == null) {
            return null;
        }
        UserProfile profile = profiles.create(UserProfileContext.USER_API, user);
        UserRepresentation rep = (UserRepresentation) profile.toRepresentation(true);
        return ModelToRepresentation.toRepresentation(session, realm, user, rep, false);
    }

    private RoleModel role(String id) {
        return roles.computeIfAbsent(id, k -> Optional.ofNullable(realm.getRoleById(k))).orElse(null);
    }

    private String groupPath(String id) {
        return groupPaths
                .computeIfAbsent(id, k -> {
                    GroupModel group = session.groups().getGroupById(realm, k);
                    // Organizations' own groups are never shown as a user's groups.
                    if (group == null || group.getType() != GroupModel.Type.REALM) {
                        return Optional.empty();
                    }
                    return Optional.of(ModelToRepresentation.buildGroupPath(group));
                })
                .orElse(null);
    }

    private static void put(Map<String, Object> map, String key, Object value) {
        if (value != null) {
            map.put(key, value);
        }
    }
}
