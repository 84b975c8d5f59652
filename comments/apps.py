from django.apps import AppConfig


class CommentsConfig(AppConfig):
    name = "comments"

    def ready(self):
        import dispatcher
        from comments import streaming

        dispatcher.register_post_handler(streaming.post_from_socket)
        dispatcher.register_stream_access(streaming.may_see_held)
