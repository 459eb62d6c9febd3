include $(sort $(wildcard $(BR2_EXTERNAL_CARAMEL_EMBEDDED_PATH)/package/*/*.mk))
