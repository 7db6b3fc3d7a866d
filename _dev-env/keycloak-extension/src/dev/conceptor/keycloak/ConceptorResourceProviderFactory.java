package dev.conceptor.keycloak;

import org.keycloak.Config;
import org.keycloak.models.KeycloakSession;
import org.keycloak.models.KeycloakSessionFactory;
import org.keycloak.services.resource.RealmResourceProvider;
import org.keycloak.services.resource.RealmResourceProviderFactory;

/** Registers the Conceptor endpoints under /realms/master/conceptor (master only: admin work). */
public final class ConceptorResourceProviderFactory implements RealmResourceProviderFactory {
    public static final String ID = "conceptor";

    @Override
    public RealmResourceProvider create(KeycloakSession session) {
        return new ConceptorResourceProvider(session);
    }

    @Override
    public void init(Config.Scope config) {}

    @Override
    public void postInit(KeycloakSessionFactory factory) {}

    @Override
    public void close() {}

    @Override
    public String getId() {
        return ID;
    }
}
