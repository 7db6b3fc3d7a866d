package dev.conceptor.keycloak;

import org.keycloak.models.KeycloakSession;
import org.keycloak.services.resource.RealmResourceProvider;

/** Hands the request to the admin-only resource; one provider per request. */
public final class ConceptorResourceProvider implements RealmResourceProvider {
    private final KeycloakSession session;

    ConceptorResourceProvider(KeycloakSession session) {
        this.session = session;
    }

    @Override
    public Object getResource() {
        return new ConceptorResource(session);
    }

    @Override
    public void close() {}
}
